{#- One entry of the sentinance var: the universe and the model contract that sentinance's
    catalog and settings hand to dbt (see dbt_project.yml): JSON from the environment, or a
    mapping where a unit test overrides it. -#}
{% macro sentinance_var(name) %}
{%- set value = var('sentinance') -%}
{{ return((fromjson(value) if value is string else value)[name]) }}
{% endmacro %}
