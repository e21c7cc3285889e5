-- The deterministic test object: event 99, section 100, capacity 5.
-- Re-running it resets section 100 to its seeded state.
INSERT INTO events (id, name, venue)
VALUES (99, 'Seed concert', 'Seed hall')
ON CONFLICT (id) DO NOTHING;

DELETE FROM bookings WHERE section_id = 100;
DELETE FROM holds WHERE section_id = 100;

INSERT INTO sections (id, event_id, name, capacity, remaining)
VALUES (100, 99, 'Floor', 5, 5)
ON CONFLICT (id) DO UPDATE SET capacity = 5, remaining = 5, held = 0,
    version = sections.version + 1;
