-- Every day of fct_daily_metrics must add up the candles of its interval (hours observed, volume,
-- trade count), and that interval must be the finest with a candle that day.
with candles_per_day as (

    select
        instrument_id,
        (open_time at time zone 'UTC')::date as date_day,
        interval,
        interval_seconds,
        count(distinct date_trunc('hour', open_time)) * greatest(interval_seconds, 3600) / 3600 as hours_observed,
        sum(volume) as volume,
        sum(trade_count) as trade_count
    from {{ ref('fct_candles') }}
    group by 1, 2, 3, 4

),

daily as (

    select * from {{ ref('fct_daily_metrics') }}

)

select
    daily.instrument_id,
    daily.date_day,
    daily.interval,
    'does not add up its candles' as problem
from daily
left join candles_per_day as own
    on
        daily.instrument_id = own.instrument_id
        and daily.date_day = own.date_day
        and daily.interval = own.interval
where
    (daily.hours_observed = 0) <> (daily.interval is null)
    or daily.hours_observed > 0
    and (
        own.instrument_id is null
        or daily.hours_observed <> own.hours_observed
        or daily.trade_count <> own.trade_count
        or abs(daily.volume - own.volume) > 1e-9 * greatest(abs(daily.volume), 1)
    )

union all

select
    candles_per_day.instrument_id,
    candles_per_day.date_day,
    candles_per_day.interval,
    'its candles are not the day''s, or a coarser interval was taken' as problem
from candles_per_day
left join daily
    on
        candles_per_day.instrument_id = daily.instrument_id
        and candles_per_day.date_day = daily.date_day
left join candles_per_day as own
    on
        daily.instrument_id = own.instrument_id
        and daily.date_day = own.date_day
        and daily.interval = own.interval
where own.instrument_id is null or candles_per_day.interval_seconds < own.interval_seconds
