{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'event_timestamp'],
        indexes=[{'columns': ['instrument_id', 'event_timestamp'], 'unique': true}],
        on_schema_change='fail'
    )
}}

{#- Lags are taken over a gap-free hourly grid, so row offset i is exactly i hours and a
    missing hour gives null. Incremental runs read each instrument's new hours plus the
    sequence_length - 1 hours of context their lags need, and rewrite from the
    instrument's latest loaded hour on (its next_log_return is known once the next hour is). -#}
{%- set features = ['log_return', 'rsi_14', 'sma_ratio', 'basis_bps'] -%}
{%- set sequence_length = var('sequence_length', 24) | int -%}

with

{% if is_incremental() -%}
loaded as (

    select instrument_id, max(event_timestamp) as loaded_until
    from {{ this }}
    group by instrument_id

),

{% endif -%}
candles as (

    select
        candles.instrument_id,
        candles.exchange,
        candles.symbol,
        candles.asset,
        candles.event_timestamp,
        candles.close,
        candles.log_return,
        candles.rsi_14,
        candles.close / nullif(candles.sma_20, 0) - 1 as sma_ratio,
        candles.basis_bps,
        candles.is_warmup,
        {% if is_incremental() -%}
        loaded.loaded_until
        {%- else -%}
        null::timestamptz as loaded_until
        {%- endif %}

    from {{ ref('stg_silver__candle_features') }} as candles
    {%- if is_incremental() %}
    left join loaded on loaded.instrument_id = candles.instrument_id
    {%- endif %}
    where candles.interval = '1h'
    {%- if is_incremental() %}
        and (
            loaded.loaded_until is null
            or candles.event_timestamp > loaded.loaded_until - interval '{{ sequence_length }} hours'
        )
    {%- endif %}

),

hours as (

    select
        instrument_id,
        generate_series(min(event_timestamp), max(event_timestamp), interval '1 hour') as event_timestamp
    from candles
    group by instrument_id

),

sequenced as (

    select
        hours.instrument_id,
        hours.event_timestamp,
        candles.exchange,
        candles.symbol,
        candles.asset,
        candles.close,
        {% for feature in features -%}
        candles.{{ feature }},
        {% endfor -%}
        {% for feature in features -%}
        {% for i in range(sequence_length) -%}
        lag(candles.{{ feature }}, {{ i }}) over hourly as {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        lead(candles.log_return) over hourly as next_log_return,
        candles.is_warmup,
        candles.loaded_until

    from hours
    left join candles
        on candles.instrument_id = hours.instrument_id
        and candles.event_timestamp = hours.event_timestamp
    window hourly as (partition by hours.instrument_id order by hours.event_timestamp)

),

final as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        event_timestamp,
        close,
        {% for feature in features -%}
        {{ feature }},
        {% endfor -%}
        {% for feature in features -%}
        {% for i in range(sequence_length) -%}
        {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        next_log_return,
        not is_warmup
            {%- for feature in features %}
            {%- for i in range(sequence_length) %}
            and {{ feature }}_lag_{{ i }} is not null
            {%- endfor %}
            {%- endfor %} as is_complete

    from sequenced
    where exchange is not null  -- an hour with a candle, not a gap in the grid
        and (loaded_until is null or event_timestamp >= loaded_until)

)

select * from final
