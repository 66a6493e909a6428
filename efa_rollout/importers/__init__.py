"""Importers: tabular reader (CSV/XLSX), GV100AD reader, validation and error report, upserts.

- `tabular`: `read_table`, `map_columns`, `detect_format` – files as Excel writes them.
- `validation`: `RowError`, `ImportErrors`, `ImportResult`, field parsers (AGS, ARS, ...).
- `gv100ad`: `read_gv100ad` – the Destatis municipality directory.
- `municipalities`: `import_municipalities`, `list_municipalities`.
- `contacts`: `import_contacts`, `list_contacts`.
"""
