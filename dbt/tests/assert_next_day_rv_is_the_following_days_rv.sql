-- next_day_rv must be the rv_daily of the same instrument one day later (the same periods), where that row exists.
{%- set model = sentinance_var('volatility') %}
with features as (

    select * from {{ ref('fct_volatility_features') }}

)

select
    today.instrument_id,
    today.event_timestamp,
    today.next_day_rv,
    next_day.rv_daily as following_rv_daily

from features as today
inner join features as next_day
    on
        today.instrument_id = next_day.instrument_id
        and next_day.event_timestamp
        = today.event_timestamp + interval '{{ model['periods_per_day'] * model['interval_seconds'] }} seconds'

where
    (today.next_day_rv is null) != (next_day.rv_daily is null)
    or abs(today.next_day_rv - next_day.rv_daily) > 1e-12
