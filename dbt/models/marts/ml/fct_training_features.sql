{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'event_timestamp'],
        indexes=[{'columns': ['instrument_id', 'event_timestamp'], 'unique': true}],
        on_schema_change='fail'
    )
}}

{#- The features, label, interval and sequence length are the model contract of sentinance's
    catalog (sentinance_var('model')). Lags are taken over a gap-free grid of the interval, so
    row offset i is exactly i intervals and a missing candle gives null. Incremental runs read
    each instrument's new periods plus the sequence_length - 1 periods of context their lags
    need, and rewrite from the instrument's latest loaded period on (its label is known once
    the next period is). -#}
{%- set model = sentinance_var('model') -%}
{%- set features = model['features'] -%}
{%- set sequence_length = model['sequence_length'] | int -%}
{%- set step = "interval '" ~ model['interval_seconds'] ~ " seconds'" -%}

with

{% if is_incremental() -%}
loaded as (

    select
        instrument_id,
        max(event_timestamp) as loaded_until
    from {{ this }}
    group by instrument_id

),

{% endif -%}
candles as (

    select
        candles.*,  -- every silver feature, so the contract may name any of them
        candles.close / nullif(candles.sma_20, 0) - 1 as sma_ratio,
        {% if is_incremental() -%}
        loaded.loaded_until
        {%- else -%}
        null::timestamptz as loaded_until
        {%- endif %}

    from {{ ref('stg_silver__candle_features') }} as candles
    {% if is_incremental() %}
    left join loaded on candles.instrument_id = loaded.instrument_id
    {% endif %}
    where
        candles.interval = '{{ model['interval'] }}'
    {% if is_incremental() %}
    and (
        loaded.loaded_until is null
        or candles.event_timestamp > loaded.loaded_until - {{ sequence_length }} * {{ step }}
    )
    {% endif %}

),

grid as (

    select
        instrument_id,
        generate_series(min(event_timestamp), max(event_timestamp), {{ step }}) as event_timestamp
    from candles
    group by instrument_id

),

sequenced as (

    select
        grid.instrument_id,
        grid.event_timestamp,
        candles.exchange,
        candles.symbol,
        candles.asset,
        candles.close,
        {% for feature in features -%}
        candles.{{ feature }},
        {% endfor -%}
        {% for feature in features -%}
        {% for i in range(sequence_length) -%}
        lag(candles.{{ feature }}, {{ i }}) over periods as {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        lead(candles.log_return) over periods as {{ model['label'] }},
        candles.is_warmup,
        candles.loaded_until

    from grid
    left join candles
        on
            grid.instrument_id = candles.instrument_id
            and grid.event_timestamp = candles.event_timestamp
    window periods as (partition by grid.instrument_id order by grid.event_timestamp)

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
        {{ model['label'] }},
        not is_warmup
        {%- for feature in features %}
        {%- for i in range(sequence_length) %}
        and {{ feature }}_lag_{{ i }} is not null
        {%- endfor %}
        {%- endfor %} as is_complete

    from sequenced
    where
        exchange is not null  -- an hour with a candle, not a gap in the grid
        and (loaded_until is null or event_timestamp >= loaded_until)

)

select * from final
