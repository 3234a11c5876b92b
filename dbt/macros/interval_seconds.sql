{#- The length in seconds of the candle interval code in `column` ('1h' -> 3600), from the
    catalog's INTERVAL_SECONDS (sentinance_var('interval_seconds')); null for an unknown code. -#}
{% macro interval_seconds(column) -%}
{%- set seconds = sentinance_var('interval_seconds') -%}
case {{ column }}{% for code in seconds %} when '{{ code }}' then {{ seconds[code] }}{% endfor %} end
{%- endmacro %}
