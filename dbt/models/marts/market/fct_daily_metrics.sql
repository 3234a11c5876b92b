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
    A day is built from the candles of ONE interval, the finest that has a candle that day, so
    intervals landed side by side are never counted twice (ADR 0007). Incremental runs
    rebuild, per instrument, from the first day touched by candles rewritten since the last build
    (or from its last built day) to the latest day; the day before is read for its close only. -#}

with

candles as (

    select
        *,
        (open_time at time zone 'UTC')::date as date_day
    from {{ ref('fct_candles') }}

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
        from candles
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
        (select max(date_day) from candles),
        interval '1 day'
    ) as day

),

rebuilt as (

    select candles.*
    from candles
    inner join rebuild_from
        on
            candles.instrument_id = rebuild_from.instrument_id
            and candles.date_day >= rebuild_from.first_day - 1

),

finest as (

    select
        instrument_id,
        date_day,
        min(interval_seconds) as interval_seconds
    from rebuilt
    group by instrument_id, date_day

),

daily as (

    select
        rebuilt.instrument_id,
        rebuilt.date_day,
        min(rebuilt.interval) as interval,
        -- hours with a candle: sub-hourly candles count their hour once, longer ones their length
        (
            count(distinct floor(extract(epoch from rebuilt.open_time) / greatest(rebuilt.interval_seconds, 3600)))
            * max(greatest(rebuilt.interval_seconds, 3600)) / 3600
        )::integer as hours_observed,
        (array_agg(rebuilt.open order by rebuilt.open_time))[1] as open,
        max(rebuilt.high) as high,
        min(rebuilt.low) as low,
        (array_agg(rebuilt.close order by rebuilt.open_time desc))[1] as close,
        sum(rebuilt.quote_volume) / nullif(sum(rebuilt.volume), 0) as vwap,
        sum(rebuilt.volume) as volume,
        sum(rebuilt.quote_volume) as quote_volume,
        sum(rebuilt.trade_count)::bigint as trade_count,
        sqrt(sum(rebuilt.log_return ^ 2)) as realized_volatility,
        count(rebuilt.log_return) as returns_observed,
        max(rebuilt.ingested_at) as last_ingested_at

    from rebuilt
    inner join finest
        on
            rebuilt.instrument_id = finest.instrument_id
            and rebuilt.date_day = finest.date_day
            and rebuilt.interval_seconds = finest.interval_seconds
    group by rebuilt.instrument_id, rebuilt.date_day

),

final as (

    select
        spine.instrument_id,
        spine.exchange,
        spine.symbol,
        spine.asset,
        spine.date_day,
        daily.interval,
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
    interval,
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
