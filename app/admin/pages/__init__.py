"""The admin's pages, one module per page (routes only; data comes from `app.admin.service`)."""
