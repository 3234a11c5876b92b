{#- One row per episode a manipulation detector flagged, with the market context of its window
    from the candles the detectors flag (sentinance_var('anomaly_interval'), hourly). -#}

with

anomalies as (

    select * from {{ ref('stg_gold__anomalies') }}

),

candles as (

    select * from {{ ref('fct_candles') }}
    where interval = '{{ sentinance_var('anomaly_interval') }}'

),

context as (

    select
        anomalies.anomaly_id,
        count(candles.open_time) as candles_observed,
        (array_agg(candles.open order by candles.open_time))[1] as window_open,
        max(candles.high) as window_high,
        min(candles.low) as window_low,
        (array_agg(candles.close order by candles.open_time desc))[1] as window_close,
        sum(candles.quote_volume) as window_quote_volume

    from anomalies
    left join candles
        on
            anomalies.instrument_id = candles.instrument_id
            and candles.open_time between anomalies.start_time and anomalies.end_time
    group by anomalies.anomaly_id

),

final as (

    select
        anomalies.anomaly_id,
        anomalies.detector,
        anomalies.instrument_id,
        anomalies.exchange,
        anomalies.symbol,
        anomalies.asset,
        anomalies.start_time,
        anomalies.end_time,
        (extract(epoch from anomalies.end_time - anomalies.start_time) / 3600)::integer + 1 as duration_hours,
        anomalies.score,
        anomalies.signals,
        cardinality(string_to_array(anomalies.signals, ',')) as signal_count,
        anomalies.evidence,
        context.candles_observed,
        context.window_open,
        context.window_high,
        context.window_low,
        context.window_close,
        context.window_quote_volume

    from anomalies
    inner join context on anomalies.anomaly_id = context.anomaly_id

)

select * from final
