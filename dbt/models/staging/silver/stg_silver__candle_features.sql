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
        is_warmup,
        computed_at

    from source

)

select * from renamed
