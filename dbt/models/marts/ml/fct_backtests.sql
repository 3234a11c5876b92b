{#- One row per registered forecaster version, strategy and rule, beside the benchmarks it must beat
    on the same window after the same costs: buy-and-hold, and the same rule on persistence's forecast. -#}

with

backtests as (

    select * from {{ ref('stg_gold__backtests') }}

),

buy_and_hold as (

    select * from backtests
    where strategy = 'buy_and_hold'

),

persistence as (

    select * from backtests
    where strategy = 'persistence'

),

final as (

    select
        backtests.model_name,
        backtests.model_version,
        backtests.strategy,
        backtests.rule,
        backtests.window_start,
        backtests.window_end,
        backtests.periods,
        backtests.instruments,
        backtests.fees_bps,
        backtests.slippage_bps,
        backtests.total_return,
        backtests.sharpe,
        backtests.max_drawdown,
        backtests.turnover,
        backtests.hit_rate,
        backtests.run_id,
        backtests.backtested_at,
        backtests.total_return - buy_and_hold.total_return as excess_return_vs_buy_and_hold,
        backtests.sharpe - buy_and_hold.sharpe as sharpe_vs_buy_and_hold,
        backtests.total_return - persistence.total_return as excess_return_vs_persistence,
        backtests.sharpe - persistence.sharpe as sharpe_vs_persistence

    from backtests
    left join buy_and_hold
        on
            backtests.model_name = buy_and_hold.model_name
            and backtests.model_version = buy_and_hold.model_version
    left join persistence
        on
            backtests.model_name = persistence.model_name
            and backtests.model_version = persistence.model_version
            and backtests.rule = persistence.rule

)

select * from final
