"""Labels that arrive late: incidents (what a drift the policy acts on opens), label requests
(the drifted images worth labelling), and imports of what annotators send back.

    incidents.py  Incident, its lifecycle (advance), IncidentStore (shared, compare-and-swap)
    select.py     entropy-weighted k-center selection (pure), the random baseline
    batch.py      the request batch (Label Studio tasks, CSV) and the accepted-labels dataset
    importer.py   Label Studio JSON / CSV rows, each accepted or rejected with a reason
"""
