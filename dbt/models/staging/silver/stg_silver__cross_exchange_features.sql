with

source as (

    select * from {{ source('silver', 'cross_exchange_features') }}

),

renamed as (

    select
        asset,
        interval,
        open_time as event_timestamp,
        exchange_count,
        total_volume,
        consolidated_vwap,
        spread_bps,
        computed_at

    from source

)

select * from renamed
