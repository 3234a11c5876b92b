-- next_log_return must be the log_return of the same instrument's following hour (null if that hour is missing).
with features as (

    select * from {{ ref('fct_training_features') }}

)

select
    current_hour.instrument_id,
    current_hour.event_timestamp,
    current_hour.next_log_return,
    following_hour.log_return as following_log_return

from features as current_hour
left join features as following_hour
    on
        current_hour.instrument_id = following_hour.instrument_id
        and following_hour.event_timestamp = current_hour.event_timestamp + interval '1 hour'

where current_hour.next_log_return is distinct from following_hour.log_return
