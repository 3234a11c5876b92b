{#- One row per asset and UTC day across the tracked exchanges (USDT counted as USD). Volume and
    realised volatility are scaled to a full day from the hours and returns observed (a day of
    hourly candles has 24 returns, of 5-minute candles 288), so a day with an outage, the
    current partial day, or a day built from another interval compares with complete days. -#}

with

daily as (

    select * from {{ ref('fct_daily_metrics') }}

),

aggregated as (

    select
        asset,
        date_day,
        count(*) filter (where hours_observed > 0) as exchanges_observed,
        bool_and(is_complete) as is_complete,
        avg(close) as close,
        avg(log_return) as log_return,
        avg(
            realized_volatility * sqrt(86400.0 / {{ interval_seconds('interval') }} / nullif(returns_observed, 0))
        ) as realized_volatility_24h,
        sum(volume) as volume,
        sum(quote_volume) as quote_volume,
        sum(quote_volume * 24.0 / nullif(hours_observed, 0)) as quote_volume_24h,
        sum(trade_count)::bigint as trade_count

    from daily
    group by asset, date_day

)

select * from aggregated
