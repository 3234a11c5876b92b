with

source as (

    select * from {{ source('silver', 'candle_features') }}

),

renamed as (

    select
        exchange || ':' || symbol as instrument_id,
        exchange,
        symbol,
        asset,
        interval,
        open_time as event_timestamp,
        close,
        volume,
        log_return,
        sma_20,
        rsi_14,
        basis_bps,
        gap_bars,
        log_return_4,
        log_return_24,
        simple_return_1,
        simple_return_4,
        simple_return_24,
        ema_20,
        macd,
        macd_signal,
        macd_hist,
        bb_upper,
        bb_lower,
        bb_pct_b,
        bb_bandwidth,
        atr_14,
        vwap_24,
        realized_vol_24,
        realized_vol_168,
        volume_zscore_24,
        obv,
        is_warmup,
        computed_at

    from source

)

select * from renamed
