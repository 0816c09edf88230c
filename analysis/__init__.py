"""Analysis layer: from fits to answers.

Summaries of area and individual effects, the lme4 side by side (`analysis.lme4`,
`analysis.compare`), figures, the report, the main job (`analysis.main_job`) and the
command line (`analysis.cli`, installed as ``sameplace``). Uses `models` and `data`;
neither of those uses it.
"""
