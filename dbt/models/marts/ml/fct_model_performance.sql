{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['instrument_id', 'target_time', 'model_version'],
        on_schema_change='fail'
    )
}}

{#- One row per prediction, joined to the actual candle of its target period (of the model
    contract's interval) once it exists, with the cross-sectional information coefficients of its
    version's forecasts for that period (across the instruments resolved then). A version's forecasts
    of one period are rebuilt together: incremental runs rewrite every period and version with a
    prediction that is new, rescored or not resolved yet. -#}

with

{% if is_incremental() -%}
pending as (

    select distinct
        predictions.model_version,
        predictions.target_time
    from {{ ref('stg_gold__predictions') }} as predictions
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

),

{% endif -%}
predictions as (

    select predictions.*
    from {{ ref('stg_gold__predictions') }} as predictions
    {% if is_incremental() %}
    inner join pending
        on
            predictions.model_version = pending.model_version
            and predictions.target_time = pending.target_time
    {% endif %}

),

candles as (

    select * from {{ ref('fct_candles') }}
    where interval = '{{ sentinance_var('model')['interval'] }}'

),

joined as (

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

),

ranked as (

    -- Spearman's rank correlation is Pearson's on ranks, tied values sharing their mean rank
    select
        model_version,
        target_time,
        predicted_log_return,
        actual_log_return,
        rank() over (partition by model_version, target_time order by predicted_log_return)
        + (count(*) over (partition by model_version, target_time, predicted_log_return) - 1) / 2.0
            as predicted_rank,
        rank() over (partition by model_version, target_time order by actual_log_return)
        + (count(*) over (partition by model_version, target_time, actual_log_return) - 1) / 2.0
            as actual_rank

    from joined
    where is_resolved

),

cross_section as (

    select
        model_version,
        target_time,
        count(*) as cross_section_size,
        case when count(*) >= 3 then corr(predicted_log_return, actual_log_return) end as cross_sectional_ic,
        case when count(*) >= 3 then corr(predicted_rank, actual_rank) end as cross_sectional_rank_ic

    from ranked
    group by model_version, target_time

),

final as (

    select
        joined.*,
        coalesce(cross_section.cross_section_size, 0) as cross_section_size,
        cross_section.cross_sectional_ic,
        cross_section.cross_sectional_rank_ic

    from joined
    left join cross_section
        on
            joined.model_version = cross_section.model_version
            and joined.target_time = cross_section.target_time

)

select * from final
