{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'event_timestamp'],
        indexes=[{'columns': ['instrument_id', 'event_timestamp'], 'unique': true}],
        on_schema_change='fail'
    )
}}

{#- The volatility model's contract (sentinance_var('volatility')): per instrument and period of the
    forecaster's mart (whose features this model reads too), the HAR-RV components (Corsi, 2009) over
    trailing days, each with sequence_length lags, and the label, the realised volatility of the next
    day. A day's realised volatility is the square root of the sum of its periods_per_day squared log
    returns, null unless every one of them is known; the weekly and monthly components average it now
    and 1 .. 4 and 1 .. 21 days earlier. Windows are ranges of time, not rows, so a missing period
    leaves a window short (null) rather than shifting it, and a lag of i periods is the row exactly
    i periods earlier (null if that candle is missing). A row is complete when every lag is known and
    the forecaster's row is complete. Incremental runs rewrite each instrument's last day of rows
    (their label could not be complete yet) and everything after it, reading the context their
    windows and lags need. -#}
{%- set model = sentinance_var('volatility') -%}
{%- set har_days = model['har_days'] -%}
{%- set periods = model['periods_per_day'] | int -%}
{%- set sequence_length = model['sequence_length'] | int -%}
{%- set context = periods * (har_days.values() | max) + sequence_length -%}
{%- set seconds = model['interval_seconds'] | int -%}
{%- set step = "interval '" ~ seconds ~ " seconds'" -%}

with

{% if is_incremental() -%}
loaded as (

    select
        instrument_id,
        max(event_timestamp) - {{ periods }} * {{ step }} as rewrite_from
    from {{ this }}
    group by instrument_id

),

{% endif -%}
forecaster as (

    select
        features.instrument_id,
        features.exchange,
        features.symbol,
        features.asset,
        features.event_timestamp,
        features.log_return,
        features.is_complete,
        {% if is_incremental() -%}
        loaded.rewrite_from
        {%- else -%}
        null::timestamptz as rewrite_from
        {%- endif %}

    from {{ ref('fct_training_features') }} as features
    {% if is_incremental() %}
    left join loaded on features.instrument_id = loaded.instrument_id
    where
        loaded.rewrite_from is null
        or features.event_timestamp > loaded.rewrite_from - {{ context }} * {{ step }}
    {% endif %}

),

days as (

    select
        *,
        case
            when count(log_return) over trailing_day = {{ periods }}
                then sqrt(sum(log_return * log_return) over trailing_day)
        end as day_rv,
        case
            when count(log_return) over next_day = {{ periods }}
                then sqrt(sum(log_return * log_return) over next_day)
        end as {{ model['label'] }}

    from forecaster
    window
        trailing_day as (
            partition by instrument_id order by event_timestamp
            range between interval '{{ (periods - 1) * seconds }} seconds' preceding and current row
        ),
        next_day as (
            partition by instrument_id order by event_timestamp
            range between {{ step }} following and interval '{{ periods * seconds }} seconds' following
        )

),

har as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        event_timestamp,
        {% for feature, n_days in har_days.items() -%}
        (
            day_rv
            {%- for day in range(1, n_days) %}
            + first_value(day_rv)
                over (
                    partition by instrument_id order by event_timestamp
                    range between interval '{{ day * periods * seconds }} seconds' preceding
                    and interval '{{ day * periods * seconds }} seconds' preceding
                )
            {%- endfor %}
        ) / {{ n_days }} as {{ feature }},
        {% endfor -%}
        {{ model['label'] }},
        is_complete,
        rewrite_from

    from days

),

sequenced as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        event_timestamp,
        {% for feature in har_days -%}
        {{ feature }},
        {% endfor -%}
        {% for feature in har_days -%}
        {{ feature }} as {{ feature }}_lag_0,
        {% for i in range(1, sequence_length) -%}
        first_value({{ feature }}) over (
            partition by instrument_id order by event_timestamp
            range between interval '{{ i * seconds }} seconds' preceding
            and interval '{{ i * seconds }} seconds' preceding
        ) as {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        {{ model['label'] }},
        is_complete as is_forecaster_complete,
        rewrite_from

    from har

),

final as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        event_timestamp,
        {% for feature in har_days -%}
        {{ feature }},
        {% endfor -%}
        {% for feature in har_days -%}
        {% for i in range(sequence_length) -%}
        {{ feature }}_lag_{{ i }},
        {% endfor -%}
        {% endfor -%}
        {{ model['label'] }},
        is_forecaster_complete
        {%- for feature in har_days %}
        {%- for i in range(sequence_length) %}
        and {{ feature }}_lag_{{ i }} is not null
        {%- endfor %}
        {%- endfor %} as is_complete

    from sequenced
    where rewrite_from is null or event_timestamp >= rewrite_from

)

select * from final
