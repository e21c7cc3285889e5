/* version: ticketd's version, as --version prints it and as its PostgreSQL
 * sessions name themselves (application_name "ticketd/VERSION"). */
#ifndef TICKETD_VERSION_H
#define TICKETD_VERSION_H

#define TICKETD_VERSION "0.2.0"

#endif
