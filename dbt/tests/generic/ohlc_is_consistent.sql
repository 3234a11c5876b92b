{#- Fails on candles whose high is below their low, open or close, or whose low is above their open or close. -#}
{% test ohlc_is_consistent(model, open='open', high='high', low='low', close='close') %}

select {{ open }}, {{ high }}, {{ low }}, {{ close }}
from {{ model }}
where {{ high }} < {{ low }}
   or {{ high }} < greatest({{ open }}, {{ close }})
   or {{ low }} > least({{ open }}, {{ close }})

{% endtest %}
