/*
 * sql: the texts of the statements a batch transaction runs, and how each
 * is planned (pg_statement.planned_each_time). The reaper's and the query
 * endpoint's statements live beside them (reaper.c, views.c).
 */
#ifndef TICKETD_SQL_H
#define TICKETD_SQL_H

#include "pg.h"

enum sql_statement {
	SQL_NOW,
	SQL_HOLD_SECTIONS,
	SQL_BOOKING_SECTIONS,
	SQL_LOCK_SECTIONS,
	SQL_LOCK_HOLDS,
	SQL_LOCK_BOOKINGS,
	SQL_EXPIRED_HOLDS,
	SQL_PROCESSED,
	SQL_EVENTS_EXIST,
	SQL_LOCK_CUSTOMERS,
	SQL_CUSTOMER_SEATS,
	SQL_NEXT_EVENT_IDS,
	SQL_NEXT_SECTION_IDS,
	SQL_NEXT_HOLD_IDS,
	SQL_NEXT_BOOKING_IDS,
	SQL_INSERT_EVENTS,
	SQL_INSERT_SECTIONS,
	SQL_UPDATE_SECTIONS,
	SQL_INSERT_HOLDS,
	SQL_UPDATE_HOLDS,
	SQL_INSERT_BOOKINGS,
	SQL_CANCEL_BOOKINGS,
	SQL_INSERT_PROCESSED,
	SQL_COUNT,
};

extern const struct pg_statement sql_statements[SQL_COUNT];

#endif
