{{ config(materialized='table') }}
select l.label, count(*) as events, max(l.weight) as weight
from {{ source('product', 'events') }} e
join {{ ref('platform_labels') }} l on e.platform = l.platform
group by l.label
