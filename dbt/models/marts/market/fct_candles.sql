{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'open_time'],
        indexes=[{'columns': ['instrument_id', 'open_time'], 'unique': true}, {'columns': ['ingested_at']}],
        on_schema_change='fail'
    )
}}

{#- Incremental runs rewrite the candles bronze landed or corrected since the last build
    (ingested_at) and the hour after each of them, whose log_return depends on its close. -#}

with

candles as (

    select * from {{ ref('stg_bronze__candles') }}
    where interval = '1h'

),

{% if is_incremental() -%}
changed as (

    select
        candles.instrument_id,
        candles.open_time
    from candles
    where candles.ingested_at > (select coalesce(max(built.ingested_at), '-infinity') from {{ this }} as built)

),

affected as (

    select
        instrument_id,
        open_time
    from changed
    union
    select
        instrument_id,
        open_time + interval '1 hour' as open_time
    from changed

),

{% endif -%}
final as (

    select
        candles.instrument_id,
        candles.exchange,
        candles.symbol,
        candles.asset,
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
            and candles.open_time = affected.open_time
    {% endif %}
    left join candles as previous
        on
            candles.instrument_id = previous.instrument_id
            and candles.open_time - interval '1 hour' = previous.open_time

)

select * from final
