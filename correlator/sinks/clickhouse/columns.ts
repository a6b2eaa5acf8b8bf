// The typed columns of the ClickHouse table, following the seed's http_logs
// table, plus the record id, the source ids and the remaining fields as
// JSON. One list drives the DDL, the row mapping and the start-up check.

export type ColumnType = 'String' | 'LowString' | 'DateTime' | 'Date' | 'UInt8' | 'UInt16' | 'UInt32' | 'UInt64' | 'Int32';

export interface Column {
  name: string;
  type: ColumnType;
  /** Record fields the value comes from, first present wins (header_* match case- and dash-insensitively). */
  from: string[];
}

const str = (name: string, from = [name]): Column => ({ name, type: 'String', from });
const low = (name: string, from = [name]): Column => ({ name, type: 'LowString', from });
const num = (name: string, type: ColumnType, from = [name]): Column => ({ name, type, from });

export const COLUMNS: Column[] = [
  str('id'),
  { name: 'time', type: 'DateTime', from: ['timestamp'] },
  { name: 'log_date', type: 'Date', from: ['timestamp'] },
  str('src_ip'),
  num('src_port', 'UInt16'),
  str('dst_ip'),
  num('dst_port', 'UInt16'),
  low('method'),
  low('scheme'),
  low('host'),
  str('path'),
  str('query'),
  low('http_version'),
  low('orphan_side'),
  num('correlated', 'UInt8'),
  num('keepalives', 'UInt16'),
  num('a_timestamp', 'UInt64'),
  num('b_timestamp', 'UInt64'),
  str('conn_id'),
  num('ip_meta_df', 'UInt8'),
  num('ip_meta_id', 'UInt32'),
  num('ip_meta_total_length', 'UInt32'),
  num('ip_meta_ttl', 'UInt8'),
  low('tcp_meta_options'),
  num('tcp_meta_window_size', 'UInt32'),
  num('syn_to_clienthello_ms', 'Int32'),
  low('tls_version'),
  low('tls_sni'),
  low('tls_alpn'),
  str('ja3'),
  str('ja3_hash'),
  str('ja4'),
  str('header_user_agent'),
  str('header_accept'),
  str('header_accept_encoding'),
  str('header_accept_language'),
  str('header_x_request_id'),
  str('header_x_trace_id'),
  str('header_x_forwarded_for'),
  str('header_sec_ch_ua'),
  str('header_sec_ch_ua_mobile'),
  str('header_sec_ch_ua_platform'),
  str('header_sec_fetch_dest'),
  str('header_sec_fetch_mode'),
  str('header_sec_fetch_site'),
  str('a_id'),
  str('b_id'),
  /** Bookkeeping of corrections: the table keeps, per (time, id), the row of the highest version (FINAL). */
  num('revision', 'UInt32'),
  { name: 'decided_at', type: 'DateTime', from: ['decided_at'] },
  num('version', 'UInt64', []),
  /** 1: the record no longer exists (a provisional orphan B that a late A matched); query with deleted = 0. */
  num('deleted', 'UInt8'),
  /** Every record field no column above took, as a JSON object. */
  str('extra', []),
];
