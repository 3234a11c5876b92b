{#- Fails on each gap between consecutive values of a timestamp column, within each partition,
    longer than max_gap_hours. -#}
{% test no_gap_longer_than(model, column_name, partition_by, max_gap_hours) %}

with ordered as (

    select
        {{ partition_by | join(', ') }},
        {{ column_name }} as gap_end,
        lag({{ column_name }}) over (
            partition by {{ partition_by | join(', ') }} order by {{ column_name }}
        ) as gap_start
    from {{ model }}

)

select *, gap_end - gap_start as gap
from ordered
where gap_end - gap_start > interval '{{ max_gap_hours }} hours'

{% endtest %}
