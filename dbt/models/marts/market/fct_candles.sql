{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'interval', 'open_time'],
        indexes=[
            {'columns': ['instrument_id', 'interval', 'open_time'], 'unique': true},
            {'columns': ['ingested_at']},
        ],
        on_schema_change='fail'
    )
}}

{#- Every interval bronze holds, each series on its own: the log return is over the previous
    candle of the same interval. Incremental runs rewrite the candles bronze landed or corrected
    since the last build (ingested_at) and the candle one interval after each of them, whose
    log_return depends on its close. -#}

with

candles as (

    select
        *,
        {{ interval_seconds('interval') }} as interval_seconds
    from {{ ref('stg_bronze__candles') }}

),

{% if is_incremental() -%}
changed as (

    select
        candles.instrument_id,
        candles.interval,
        candles.open_time,
        candles.interval_seconds
    from candles
    where candles.ingested_at > (select coalesce(max(built.ingested_at), '-infinity') from {{ this }} as built)

),

affected as (

    select
        instrument_id,
        interval,
        open_time
    from changed
    union
    select
        instrument_id,
        interval,
        open_time + make_interval(secs => interval_seconds) as open_time
    from changed

),

{% endif -%}
final as (

    select
        candles.instrument_id,
        candles.exchange,
        candles.symbol,
        candles.asset,
        candles.interval,
        candles.interval_seconds,
        candles.open_time,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        candles.volume * candles.typical_price as quote_volume,
        candles.trade_count,
        candles.typical_price,
        ln(candles.close / previous.close) as log_return,
        previous.open_time is null as follows_gap,
        candles.ingested_at

    from candles
    {% if is_incremental() %}
    inner join affected
        on
            candles.instrument_id = affected.instrument_id
            and candles.interval = affected.interval
            and candles.open_time = affected.open_time
    {% endif %}
    left join candles as previous
        on
            candles.instrument_id = previous.instrument_id
            and candles.interval = previous.interval
            and candles.open_time - make_interval(secs => candles.interval_seconds) = previous.open_time

)

select * from final
