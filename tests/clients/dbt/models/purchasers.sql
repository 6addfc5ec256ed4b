{{ config(materialized='table') }}
select user_id, count(*) as purchases, min(event_time) as first_purchase
from {{ source('product', 'events') }}
where event = 'purchase'
group by user_id
