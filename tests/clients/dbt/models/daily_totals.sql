select event_date, sum(events) as events
from {{ ref('daily_events') }}
group by event_date
