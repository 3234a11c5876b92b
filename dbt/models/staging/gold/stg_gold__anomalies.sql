with

source as (

    select * from {{ source('gold', 'anomalies') }}

),

renamed as (

    select
        anomaly_id,
        detector,
        exchange || ':' || symbol as instrument_id,
        exchange,
        symbol,
        split_part(symbol, '/', 1) as asset,
        start_time,
        end_time,
        score,
        signals,
        evidence::jsonb as evidence

    from source

)

select * from renamed
