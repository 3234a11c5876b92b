{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'target_time', 'model_version'],
        on_schema_change='fail'
    )
}}

{#- One row per prediction, joined to the actual candle of its target period (of the model
    contract's interval) once it exists. Incremental runs rewrite the predictions that are new,
    rescored, or not resolved yet. -#}

with

predictions as (

    select predictions.*
    from {{ ref('stg_gold__predictions') }} as predictions
    {%- if is_incremental() %}
    where
        not exists (
            select
            from {{ this }} as built
            where
                built.instrument_id = predictions.instrument_id
                and built.target_time = predictions.target_time
                and built.model_version = predictions.model_version
                and built.scored_at = predictions.scored_at
                and built.is_resolved
        )
    {%- endif %}

),

candles as (

    select * from {{ ref('fct_candles') }}
    where interval = '{{ sentinance_var('model')['interval'] }}'

),

final as (

    select
        predictions.instrument_id,
        predictions.model_name,
        predictions.model_version,
        predictions.model_alias,
        predictions.feature_time,
        predictions.target_time,
        predictions.scored_at,
        predictions.predicted_log_return,
        predictions.predicted_close,
        actual.log_return as actual_log_return,
        actual.close as actual_close,
        latest.log_return as persistence_log_return,
        actual.log_return is not null as is_resolved,
        predictions.predicted_log_return - actual.log_return as error,
        abs(predictions.predicted_log_return - actual.log_return) as absolute_error,
        abs(latest.log_return - actual.log_return) as persistence_absolute_error,
        sign(predictions.predicted_log_return) = sign(actual.log_return) as is_direction_correct,
        predictions.predicted_close / actual.close - 1 as close_error_ratio

    from predictions
    left join candles as actual
        on
            predictions.instrument_id = actual.instrument_id
            and predictions.target_time = actual.open_time
    left join candles as latest
        on
            predictions.instrument_id = latest.instrument_id
            and predictions.feature_time = latest.open_time

)

select * from final
