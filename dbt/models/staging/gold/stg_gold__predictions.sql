with

source as (

    select * from {{ source('gold', 'predictions') }}

),

renamed as (

    select
        instrument_id,
        feature_time,
        target_time,
        predicted_log_return,
        predicted_close,
        model_name,
        model_version,
        model_alias,
        scored_at

    from source

)

select * from renamed
