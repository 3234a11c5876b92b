{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'date_day'],
        indexes=[{'columns': ['instrument_id', 'date_day'], 'unique': true}],
        on_schema_change='fail'
    )
}}

{#- One row per instrument and UTC day on a date spine from the instrument's first day to the
    latest day of any instrument, so a day without candles is a row with hours_observed = 0.
    Incremental runs rebuild, per instrument, from the first day touched by hourly rows
    rewritten since the last build (or from its last built day) to the latest day; the day
    before is read for its close only. -#}

with

hourly as (

    select
        *,
        (open_time at time zone 'UTC')::date as date_day
    from {{ ref('fct_candles_hourly') }}

),

rebuild_from as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        min(date_day) as first_day
    from (
        select
            instrument_id,
            exchange,
            symbol,
            asset,
            date_day
        from hourly
        {%- if is_incremental() %}
        where ingested_at > (select coalesce(max(built.last_ingested_at), '-infinity') from {{ this }} as built)
        union all
        select
            instrument_id,
            exchange,
            symbol,
            asset,
            max(date_day) as date_day
        from {{ this }}
        group by instrument_id, exchange, symbol, asset
        {%- endif %}
    ) as touched
    group by instrument_id, exchange, symbol, asset

),

spine as (

    select
        rebuild_from.instrument_id,
        rebuild_from.exchange,
        rebuild_from.symbol,
        rebuild_from.asset,
        rebuild_from.first_day,
        day::date as date_day
    from rebuild_from
    cross join lateral generate_series(
        rebuild_from.first_day - 1,
        (select max(date_day) from hourly),
        interval '1 day'
    ) as day

),

daily as (

    select
        hourly.instrument_id,
        hourly.date_day,
        count(*) as hours_observed,
        (array_agg(hourly.open order by hourly.open_time))[1] as open,
        max(hourly.high) as high,
        min(hourly.low) as low,
        (array_agg(hourly.close order by hourly.open_time desc))[1] as close,
        sum(hourly.quote_volume) / nullif(sum(hourly.volume), 0) as vwap,
        sum(hourly.volume) as volume,
        sum(hourly.quote_volume) as quote_volume,
        sum(hourly.trade_count)::bigint as trade_count,
        sqrt(sum(hourly.log_return ^ 2)) as realized_volatility,
        count(hourly.log_return) as returns_observed,
        max(hourly.ingested_at) as last_ingested_at

    from hourly
    inner join rebuild_from
        on
            hourly.instrument_id = rebuild_from.instrument_id
            and hourly.date_day >= rebuild_from.first_day - 1
    group by hourly.instrument_id, hourly.date_day

),

final as (

    select
        spine.instrument_id,
        spine.exchange,
        spine.symbol,
        spine.asset,
        spine.date_day,
        coalesce(daily.hours_observed, 0) as hours_observed,
        coalesce(daily.hours_observed, 0) = 24 as is_complete,
        daily.open,
        daily.high,
        daily.low,
        daily.close,
        daily.vwap,
        ln(daily.close / lag(daily.close) over by_day) as log_return,
        daily.realized_volatility,
        daily.returns_observed,
        coalesce(daily.volume, 0) as volume,
        coalesce(daily.quote_volume, 0) as quote_volume,
        coalesce(daily.trade_count, 0) as trade_count,
        daily.last_ingested_at,
        spine.first_day

    from spine
    left join daily
        on
            spine.instrument_id = daily.instrument_id
            and spine.date_day = daily.date_day
    window by_day as (partition by spine.instrument_id order by spine.date_day)

)

select
    instrument_id,
    exchange,
    symbol,
    asset,
    date_day,
    hours_observed,
    is_complete,
    open,
    high,
    low,
    close,
    vwap,
    log_return,
    realized_volatility,
    returns_observed,
    volume,
    quote_volume,
    trade_count,
    last_ingested_at

from final
where date_day >= first_day
