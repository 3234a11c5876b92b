with

source as (

    select * from {{ source('bronze', 'candles') }}

),

renamed as (

    select
        exchange || ':' || symbol as instrument_id,
        exchange,
        symbol,
        split_part(symbol, '/', 1) as asset,
        split_part(symbol, '/', 2) as quote,
        interval,
        open_time,
        open,
        high,
        low,
        close,
        volume,
        (high + low + close) / 3 as typical_price,
        trade_count,
        source,
        ingested_at

    from source

)

select * from renamed
