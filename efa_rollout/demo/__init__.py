"""The demo: the Ostalbkreis rolls out ViBa BW and eWA on a simulated timeline.

Everything a municipality does here (answers, ticks) is SIMULATED and logged as such
(source "simulation", author "Simulation (Demo)"); mail goes into the mail folder.
`scenario` holds the timeline, `simulation` the data and the simulated municipalities,
`runner` runs the timeline through the real flows.
"""
