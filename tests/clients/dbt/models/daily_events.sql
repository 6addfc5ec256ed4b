select event_date, event, count(*) as events, count(distinct user_id) as users
from {{ source('product', 'events') }}
group by event_date, event
