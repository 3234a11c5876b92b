-- Every day of fct_daily_metrics must add up its hourly candles: volume, trade count and hours observed.
with hourly as (

    select
        instrument_id,
        (open_time at time zone 'UTC')::date as date_day,
        count(*) as hours_observed,
        sum(volume) as volume,
        sum(trade_count) as trade_count
    from {{ ref('fct_candles_hourly') }}
    group by 1, 2

)

select
    daily.instrument_id,
    daily.date_day,
    daily.hours_observed,
    hourly.hours_observed as hourly_hours_observed,
    daily.volume,
    hourly.volume as hourly_volume

from {{ ref('fct_daily_metrics') }} as daily
full outer join hourly
    on
        daily.instrument_id = hourly.instrument_id
        and daily.date_day = hourly.date_day

where
    daily.instrument_id is null
    or daily.hours_observed <> coalesce(hourly.hours_observed, 0)
    or daily.trade_count <> coalesce(hourly.trade_count, 0)
    or abs(daily.volume - coalesce(hourly.volume, 0)) > 1e-9 * greatest(abs(daily.volume), 1)
