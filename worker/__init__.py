"""storywatch: a self-hosted news monitoring worker.

    config ─► schedule ─► pipeline.refresh_feed(feed)                 backfill ─┐
                             │                                                  │
       fetch ─► parse ─► normalize ─► dedupe ─► track ─► store ◄───────────────┘
                                                          store ─► digest ─► deliver

One module owns each stage (see ../docs and README.md); `store` is the only one that speaks SQL.
"""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/storywatch/storywatch"
