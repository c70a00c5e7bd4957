// The dashboard (see the dashboard issue).
