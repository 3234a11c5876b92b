-- fear_greed_index must be the rounded weighted mean (vars fear_greed.weights) of the component scores present.
{%- set weights = var('fear_greed')['weights'] %}

with scores as (

    select
        date_day,
        fear_greed_index,
    {%- for name, weight in weights.items() %}
    {{ weight }} * {{ name }}_score as weighted_{{ name }},
    case when {{ name }}_score is not null then {{ weight }} end as weight_{{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
    from {{ ref('fct_fear_and_greed') }}

),

expected as (

    select
        date_day,
        fear_greed_index,
        round(
            (
                {% for name in weights %}coalesce(
                    weighted_{{ name }}, 0
                ){{ ' + ' if not loop.last }}{% endfor %}
            )
            / nullif(
                {% for name in weights %}coalesce(
                    weight_{{ name }}, 0
                ){{ ' + ' if not loop.last }}{% endfor %},
                0
            )
        ) as expected_index
    from scores

)

select *
from expected
where fear_greed_index is distinct from expected_index
