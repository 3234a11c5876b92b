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
    day. Windows are ranges of time, not rows, so a missing candle leaves a window short rather than
    shifting it.
    - A day's realised volatility is the square root of the sum of the squared log returns of the
      candles in it, given at least half of its periods_per_day candles: the return after a missing
      candle runs from the last close before the gap, so the day's variation is all there.
    - A component over n days is the mean of the day's realised volatility now and 1 .. n - 1 days
      earlier at the same time of day (a partition per period of the day), given at least half of them.
    - A lag of i periods is the row exactly i periods earlier (null if that candle is missing).
    A row is complete when every lag is known and the forecaster's row is complete. Incremental runs
    rewrite each instrument's last day of rows (their label could not be complete yet) and everything
    after it, reading the context their windows and lags need. -#}
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
        -- the period's place in its day: the components average the same time of day over days
        mod(floor(extract(epoch from features.event_timestamp) / {{ seconds }})::bigint, {{ periods }})
            as period_of_day,
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
            when count(log_return) over trailing_day * 2 >= {{ periods }}
                then sqrt(sum(log_return * log_return) over trailing_day)
        end as day_rv,
        case
            when count(log_return) over next_day * 2 >= {{ periods }}
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

trailing_days as (

    select
        {% for feature, n_days in har_days.items() -%}
        avg(day_rv) over (
            partition by instrument_id, period_of_day order by event_timestamp
            range between interval '{{ (n_days - 1) * periods * seconds }} seconds' preceding and current row
        ) as {{ feature }}_mean,
        count(day_rv) over (
            partition by instrument_id, period_of_day order by event_timestamp
            range between interval '{{ (n_days - 1) * periods * seconds }} seconds' preceding and current row
        ) as {{ feature }}_days,
        {% endfor -%}
        *

    from days

),

har as (

    select
        instrument_id,
        exchange,
        symbol,
        asset,
        event_timestamp,
        {% for feature, n_days in har_days.items() -%}
        case when {{ feature }}_days * 2 >= {{ n_days }} then {{ feature }}_mean end as {{ feature }},
        {% endfor -%}
        {{ model['label'] }},
        is_complete,
        rewrite_from

    from trailing_days

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
