{{ config(materialized='incremental', unique_key='event_date') }}
select event_date, count(*) as signups
from {{ source('product', 'events') }}
where event = 'signup'
{% if is_incremental() %}
  and event_date >= (select max(event_date) from {{ this }})
{% endif %}
group by event_date
