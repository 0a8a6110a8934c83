/** The dstack API release this server speaks on the wire; `get_info` reports it. */
export const serverVersion = '0.21.0';
