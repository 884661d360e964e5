"""The steps several commands share: a window's plan, daily partials and window reports, the
analyst outputs, the own-domain step, the partners table and the row accounting."""
