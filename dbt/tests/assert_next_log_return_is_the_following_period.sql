-- next_log_return must be the log_return of the same instrument's following period (one interval of
-- the model contract later; null if that period is missing).
{%- set step = sentinance_var('model')['interval_seconds'] %}

with features as (

    select * from {{ ref('fct_training_features') }}

)

select
    current_period.instrument_id,
    current_period.event_timestamp,
    current_period.next_log_return,
    following_period.log_return as following_log_return

from features as current_period
left join features as following_period
    on
        current_period.instrument_id = following_period.instrument_id
        and following_period.event_timestamp = current_period.event_timestamp + interval '{{ step }} seconds'

where current_period.next_log_return is distinct from following_period.log_return
