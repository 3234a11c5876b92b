{#- A crypto Fear & Greed index from market data only, one row per UTC day: 0 = extreme fear,
    100 = extreme greed. Each component turns a signal into a score in (0, 100) with
    50 * (1 +/- tanh(signal / scale)); the index is the weighted mean of the components present.
    Formulas, scales, weights and the components left out: docs/fear_and_greed.md. -#}
{%- set fg = var('fear_greed') -%}
{%- set components = ['volatility', 'momentum', 'volume', 'dominance'] -%}

with

assets as (

    select * from {{ ref('int_daily_metrics_aggregated_to_assets') }}

),

market as (

    select
        date_day,
        max(close) filter (where asset = '{{ fg.reference_asset }}') as close,
        max(realized_volatility_24h) filter (where asset = '{{ fg.reference_asset }}') as realized_volatility,
        sum(quote_volume_24h) as quote_volume,
        max(quote_volume_24h) filter (where asset = '{{ fg.reference_asset }}')
        / nullif(sum(quote_volume_24h), 0) as dominance

    from assets
    group by date_day

),

averaged as (

    select
        *,
        count(realized_volatility) over (order by date_day rows between 90 preceding and 1 preceding)
            as history_days,
        avg(realized_volatility) over (order by date_day rows between 30 preceding and 1 preceding)
            as volatility_avg_30d,
        avg(realized_volatility) over (order by date_day rows between 90 preceding and 1 preceding)
            as volatility_avg_90d,
        avg(close) over (order by date_day rows between 29 preceding and current row) as close_avg_30d,
        avg(close) over (order by date_day rows between 89 preceding and current row) as close_avg_90d,
        avg(nullif(quote_volume, 0)) over (order by date_day rows between 30 preceding and 1 preceding)
            as volume_avg_30d,
        avg(nullif(quote_volume, 0)) over (order by date_day rows between 90 preceding and 1 preceding)
            as volume_avg_90d,
        avg(dominance) over (order by date_day rows between 6 preceding and current row) as dominance_avg_7d,
        avg(dominance) over (order by date_day rows between 29 preceding and current row) as dominance_avg_30d

    from market

),

signals as (

    select
        *,
        case
            when history_days >= {{ fg.min_history_days }}
                then
                    (
                        ln(nullif(realized_volatility, 0) / volatility_avg_30d)
                        + ln(nullif(realized_volatility, 0) / volatility_avg_90d)
                    ) / 2
        end as volatility_signal,
        case
            when history_days >= {{ fg.min_history_days }}
                then
                    (ln(close / close_avg_30d) + ln(close / close_avg_90d)) / 2
        end as momentum_signal,
        case
            when history_days >= {{ fg.min_history_days }}
                then
                    (ln(nullif(quote_volume, 0) / volume_avg_30d) + ln(nullif(quote_volume, 0) / volume_avg_90d)) / 2
        end as volume_signal,
        case
            when history_days >= {{ fg.min_history_days }}
                then
                    dominance_avg_7d - dominance_avg_30d
        end as dominance_signal

    from averaged

),

scored as (

    select
        *,
        50 * (1 - tanh(volatility_signal / {{ fg.scales.volatility }})) as volatility_score,
        50 * (1 + tanh(momentum_signal / {{ fg.scales.momentum }})) as momentum_score,
        50 * (1 + tanh(sign(momentum_signal) * volume_signal / {{ fg.scales.volume }})) as volume_score,
        50 * (1 - tanh(dominance_signal / {{ fg.scales.dominance }})) as dominance_score

    from signals

),

indexed as (

    select
        *,
        (
            {%- for c in components %}
            coalesce({{ fg.weights[c] }} * {{ c }}_score, 0){{ ' +' if not loop.last }}
            {%- endfor %}
        ) / nullif(
            {%- for c in components %}
            case when {{ c }}_score is not null then {{ fg.weights[c] }} else 0 end{{ ' +' if not loop.last }}
            {%- endfor %}, 0
        ) as index_value

    from scored

),

final as (

    select
        date_day,
        round(index_value)::integer as fear_greed_index,
        case
            when index_value is null then null
            when round(index_value) < 25 then 'Extreme Fear'
            when round(index_value) < 45 then 'Fear'
            when round(index_value) <= 55 then 'Neutral'
            when round(index_value) <= 75 then 'Greed'
            else 'Extreme Greed'
        end as fear_greed_label,
        index_value,
        {%- for c in components %}
        {{ c }}_score,
        {%- endfor %}
        {%- for c in components %}
        {{ c }}_signal,
        {%- endfor %}
        history_days,
        history_days < 90 as is_provisional,
        close as reference_close,
        realized_volatility as reference_realized_volatility,
        quote_volume as market_quote_volume,
        dominance as reference_dominance

    from indexed

)

select * from final
