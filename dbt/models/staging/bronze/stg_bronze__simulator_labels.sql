with

source as (

    select * from {{ source('bronze', 'simulator_labels') }}

),

renamed as (

    select
        episode_id,
        kind,
        exchange || ':' || symbol as instrument_id,
        exchange,
        symbol,
        start_time,
        end_time

    from source

)

select * from renamed
