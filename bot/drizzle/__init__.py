"""Drizzle's rules: migrations folder, journal rows, forward migrations, lint, derive, history.

Pure, like the core: the rows and files arrive as values, read by `bot.target` and by the folder
reader here (reading files is the only I/O this floor does).
"""
