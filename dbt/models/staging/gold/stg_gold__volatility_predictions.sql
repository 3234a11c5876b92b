with

source as (

    select * from {{ source('gold', 'volatility_predictions') }}

),

renamed as (

    select
        instrument_id,
        feature_time,
        target_time,
        predicted_rv,
        model_name,
        model_version,
        model_alias,
        scored_at

    from source

)

select * from renamed
