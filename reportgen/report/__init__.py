"""The report stage: plain data in, a static site and its manifest out. No torch here."""
