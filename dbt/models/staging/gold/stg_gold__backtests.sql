with

source as (

    select * from {{ source('gold', 'backtests') }}

),

renamed as (

    select
        model_name,
        model_version,
        strategy,
        rule,
        window_start,
        window_end,
        periods,
        instruments,
        fees_bps,
        slippage_bps,
        total_return,
        sharpe,
        max_drawdown,
        turnover,
        hit_rate,
        run_id,
        backtested_at

    from source

)

select * from renamed
