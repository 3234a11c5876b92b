{#- One row per UTC day and tracked asset: the day's move and its rank among the tracked assets
    (top movers), the asset's share of their traded value (volume dominance), and the day's
    Fear & Greed index. -#}

with

assets as (

    select * from {{ ref('int_daily_metrics_aggregated_to_assets') }}

),

fear_and_greed as (

    select * from {{ ref('fct_fear_and_greed') }}

),

ranked as (

    select
        date_day,
        asset,
        exchanges_observed,
        is_complete,
        close,
        exp(log_return) - 1 as daily_return,
        rank() over (partition by date_day order by log_return desc nulls last) as return_rank,
        rank() over (partition by date_day order by log_return asc nulls last) as return_rank_ascending,
        log_return is not null as has_return,
        quote_volume,
        quote_volume_24h / nullif(sum(quote_volume_24h) over (partition by date_day), 0) as volume_dominance

    from assets

),

final as (

    select
        ranked.date_day,
        ranked.asset,
        ranked.exchanges_observed,
        ranked.is_complete,
        ranked.close,
        ranked.daily_return,
        case when ranked.has_return then ranked.return_rank end as return_rank,
        ranked.has_return and ranked.return_rank = 1 as is_top_gainer,
        ranked.has_return and ranked.return_rank_ascending = 1 as is_top_loser,
        ranked.quote_volume,
        ranked.volume_dominance,
        ranked.volume_dominance
        - lag(ranked.volume_dominance, 7) over (partition by ranked.asset order by ranked.date_day)
            as volume_dominance_change_7d,
        fear_and_greed.fear_greed_index,
        fear_and_greed.fear_greed_label

    from ranked
    left join fear_and_greed on ranked.date_day = fear_and_greed.date_day

)

select * from final
