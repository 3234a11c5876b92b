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
    catalog (sentinance_var('model')). A candle's period is its open time counted in intervals,
    and lag i is the value exactly i periods earlier (a window frame of that one period), so a
    missing candle gives null, never the candle before it. Each window is one pass over the
    instrument's candles in period order: the cost grows with the rows, not their square.
    Incremental runs read each instrument's new periods plus the sequence_length periods of
    context their lags need, and rewrite from the instrument's latest loaded period on (its
    label is known once the next period is). -#}
{%- set model = sentinance_var('model') -%}
{%- set features = model['features'] -%}
{%- set sequence_length = model['sequence_length'] | int -%}
{%- set interval_seconds = model['interval_seconds'] | int -%}

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
        (extract(epoch from candles.event_timestamp) / {{ interval_seconds }})::bigint as period,
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
        or candles.event_timestamp
        >= loaded.loaded_until - interval '{{ sequence_length * interval_seconds }} seconds'
    )
    {% endif %}

),

sequenced as (

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
        {{ feature }} as {{ feature }}_lag_0,
        {% for i in range(1, sequence_length) -%}
        first_value({{ feature }}) over lag_{{ i }} as {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        first_value(log_return) over next_period as {{ model['label'] }},
        is_warmup,
        loaded_until

    from candles
    window
        {%- for i in range(1, sequence_length) %}
        lag_{{ i }} as (
            partition by instrument_id order by period range between {{ i }} preceding and {{ i }} preceding
        ),
        {%- endfor %}
        next_period as (partition by instrument_id order by period range between 1 following and 1 following)

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
    where loaded_until is null or event_timestamp >= loaded_until

)

select * from final
