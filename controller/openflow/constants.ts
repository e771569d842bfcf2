// OpenFlow 1.3 (spec 1.3.5) constants: message types, ports, flags and every error type/code,
// each with its spec name so logs and errors can say OFPET_BAD_ACTION/OFPBAC_BAD_EXPERIMENTER.

export const OFP_VERSION = 0x04;
export const OFP_HEADER_LEN = 8;

/** Message type numbers (ofp_type). */
export const OFPT = {
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  EXPERIMENTER: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  GROUP_MOD: 15,
  PORT_MOD: 16,
  TABLE_MOD: 17,
  MULTIPART_REQUEST: 18,
  MULTIPART_REPLY: 19,
  BARRIER_REQUEST: 20,
  BARRIER_REPLY: 21,
  QUEUE_GET_CONFIG_REQUEST: 22,
  QUEUE_GET_CONFIG_REPLY: 23,
  ROLE_REQUEST: 24,
  ROLE_REPLY: 25,
  GET_ASYNC_REQUEST: 26,
  GET_ASYNC_REPLY: 27,
  SET_ASYNC: 28,
  METER_MOD: 29,
} as const;

/** Reserved port numbers (ofp_port_no). */
export const OFPP = {
  MAX: 0xffffff00,
  IN_PORT: 0xfffffff8,
  TABLE: 0xfffffff9,
  NORMAL: 0xfffffffa,
  FLOOD: 0xfffffffb,
  ALL: 0xfffffffc,
  CONTROLLER: 0xfffffffd,
  LOCAL: 0xfffffffe,
  ANY: 0xffffffff,
} as const;

/** Group numbers. */
export const OFPG = { MAX: 0xffffff00, ALL: 0xfffffffc, ANY: 0xffffffff } as const;

/** Table numbers. */
export const OFPTT = { MAX: 0xfe, ALL: 0xff } as const;

export const OFPCML_MAX = 0xffe5;
export const OFPCML_NO_BUFFER = 0xffff;
export const OFP_NO_BUFFER = 0xffffffff;

/** OFPVID_PRESENT: set in vlan_vid when a VLAN tag is present. */
export const OFPVID = { PRESENT: 0x1000, NONE: 0x0000 } as const;

/** ofp_flow_mod_flags. */
export const OFPFF = {
  SEND_FLOW_REM: 1,
  CHECK_OVERLAP: 2,
  RESET_COUNTS: 4,
  NO_PKT_COUNTS: 8,
  NO_BYT_COUNTS: 16,
} as const;

/** ofp_flow_mod_command. */
export const OFPFC = { ADD: 0, MODIFY: 1, MODIFY_STRICT: 2, DELETE: 3, DELETE_STRICT: 4 } as const;

/** ofp_config_flags. */
export const OFPC_FRAG = { NORMAL: 0, DROP: 1, REASM: 2, MASK: 3 } as const;

/** ofp_capabilities. */
export const OFPC = {
  FLOW_STATS: 1 << 0,
  TABLE_STATS: 1 << 1,
  PORT_STATS: 1 << 2,
  GROUP_STATS: 1 << 3,
  IP_REASM: 1 << 5,
  QUEUE_STATS: 1 << 6,
  PORT_BLOCKED: 1 << 8,
} as const;

/** ofp_packet_in_reason. */
export const OFPR = { NO_MATCH: 0, ACTION: 1, INVALID_TTL: 2 } as const;

/** ofp_flow_removed_reason. */
export const OFPRR = { IDLE_TIMEOUT: 0, HARD_TIMEOUT: 1, DELETE: 2, GROUP_DELETE: 3 } as const;

/** ofp_port_reason. */
export const OFPPR = { ADD: 0, DELETE: 1, MODIFY: 2 } as const;

/** ofp_port_config. */
export const OFPPC = { PORT_DOWN: 1 << 0, NO_RECV: 1 << 2, NO_FWD: 1 << 5, NO_PACKET_IN: 1 << 6 } as const;

/** ofp_port_state. */
export const OFPPS = { LINK_DOWN: 1 << 0, BLOCKED: 1 << 1, LIVE: 1 << 2 } as const;

/** ofp_port_features. */
export const OFPPF = {
  '10MB_HD': 1 << 0,
  '10MB_FD': 1 << 1,
  '100MB_HD': 1 << 2,
  '100MB_FD': 1 << 3,
  '1GB_HD': 1 << 4,
  '1GB_FD': 1 << 5,
  '10GB_FD': 1 << 6,
  '40GB_FD': 1 << 7,
  '100GB_FD': 1 << 8,
  '1TB_FD': 1 << 9,
  OTHER: 1 << 10,
  COPPER: 1 << 11,
  FIBER: 1 << 12,
  AUTONEG: 1 << 13,
  PAUSE: 1 << 14,
  PAUSE_ASYM: 1 << 15,
} as const;

/** ofp_controller_role. */
export const OFPCR_ROLE = { NOCHANGE: 0, EQUAL: 1, MASTER: 2, SLAVE: 3 } as const;

/** ofp_multipart_request_flags / reply flags. */
export const OFPMPF = { REQ_MORE: 1, REPLY_MORE: 1 } as const;

/** ofp_multipart_type. */
export const OFPMP = {
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  QUEUE: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER: 9,
  METER_CONFIG: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: 13,
  EXPERIMENTER: 0xffff,
} as const;

/** ofp_action_type. */
export const OFPAT = {
  OUTPUT: 0,
  COPY_TTL_OUT: 11,
  COPY_TTL_IN: 12,
  SET_MPLS_TTL: 15,
  DEC_MPLS_TTL: 16,
  PUSH_VLAN: 17,
  POP_VLAN: 18,
  PUSH_MPLS: 19,
  POP_MPLS: 20,
  SET_QUEUE: 21,
  GROUP: 22,
  SET_NW_TTL: 23,
  DEC_NW_TTL: 24,
  SET_FIELD: 25,
  PUSH_PBB: 26,
  POP_PBB: 27,
  EXPERIMENTER: 0xffff,
} as const;

/** ofp_instruction_type. */
export const OFPIT = {
  GOTO_TABLE: 1,
  WRITE_METADATA: 2,
  WRITE_ACTIONS: 3,
  APPLY_ACTIONS: 4,
  CLEAR_ACTIONS: 5,
  METER: 6,
  EXPERIMENTER: 0xffff,
} as const;

/** ofp_match_type. */
export const OFPMT = { STANDARD: 0, OXM: 1 } as const;

/** ofp_oxm_class. */
export const OFPXMC = {
  NXM_0: 0x0000,
  NXM_1: 0x0001,
  OPENFLOW_BASIC: 0x8000,
  EXPERIMENTER: 0xffff,
} as const;

/** ofp_ipv6exthdr_flags: the bits of an OXM_OF_IPV6_EXTHDR value (OF1.3 §7.2.3.8). */
export const OFPIEH = {
  NONEXT: 1 << 0, // "No next header" encountered
  ESP: 1 << 1,
  AUTH: 1 << 2,
  DEST: 1 << 3,
  FRAG: 1 << 4,
  ROUTER: 1 << 5,
  HOP: 1 << 6,
  UNREP: 1 << 7, // unexpected repeats encountered
  UNSEQ: 1 << 8, // unexpected sequencing encountered
} as const;

/** ofp_hello_elem_type. */
export const OFPHET = { VERSIONBITMAP: 1 } as const;

/** Experimenter (vendor) ids. */
export const NX_VENDOR_ID = 0x00002320; // Nicira
export const ONF_VENDOR_ID = 0x4f4e4600; // Open Networking Foundation ("ONF\0")

// ---------------------------------------------------------------------------------------------
// Errors. Each code table is a name->number object; the reverse maps are built once below.

export const OFPET = {
  HELLO_FAILED: 0,
  BAD_REQUEST: 1,
  BAD_ACTION: 2,
  BAD_INSTRUCTION: 3,
  BAD_MATCH: 4,
  FLOW_MOD_FAILED: 5,
  GROUP_MOD_FAILED: 6,
  PORT_MOD_FAILED: 7,
  TABLE_MOD_FAILED: 8,
  QUEUE_OP_FAILED: 9,
  SWITCH_CONFIG_FAILED: 10,
  ROLE_REQUEST_FAILED: 11,
  METER_MOD_FAILED: 12,
  TABLE_FEATURES_FAILED: 13,
  EXPERIMENTER: 0xffff,
} as const;

export const OFPHFC = { INCOMPATIBLE: 0, EPERM: 1 } as const;

export const OFPBRC = {
  BAD_VERSION: 0,
  BAD_TYPE: 1,
  BAD_MULTIPART: 2,
  BAD_EXPERIMENTER: 3,
  BAD_EXP_TYPE: 4,
  EPERM: 5,
  BAD_LEN: 6,
  BUFFER_EMPTY: 7,
  BUFFER_UNKNOWN: 8,
  BAD_TABLE_ID: 9,
  IS_SLAVE: 10,
  BAD_PORT: 11,
  BAD_PACKET: 12,
  MULTIPART_BUFFER_OVERFLOW: 13,
} as const;

export const OFPBAC = {
  BAD_TYPE: 0,
  BAD_LEN: 1,
  BAD_EXPERIMENTER: 2,
  BAD_EXP_TYPE: 3,
  BAD_OUT_PORT: 4,
  BAD_ARGUMENT: 5,
  EPERM: 6,
  TOO_MANY: 7,
  BAD_QUEUE: 8,
  BAD_OUT_GROUP: 9,
  MATCH_INCONSISTENT: 10,
  UNSUPPORTED_ORDER: 11,
  BAD_TAG: 12,
  BAD_SET_TYPE: 13,
  BAD_SET_LEN: 14,
  BAD_SET_ARGUMENT: 15,
} as const;

export const OFPBIC = {
  UNKNOWN_INST: 0,
  UNSUP_INST: 1,
  BAD_TABLE_ID: 2,
  UNSUP_METADATA: 3,
  UNSUP_METADATA_MASK: 4,
  BAD_EXPERIMENTER: 5,
  BAD_EXP_TYPE: 6,
  BAD_LEN: 7,
  EPERM: 8,
} as const;

export const OFPBMC = {
  BAD_TYPE: 0,
  BAD_LEN: 1,
  BAD_TAG: 2,
  BAD_DL_ADDR_MASK: 3,
  BAD_NW_ADDR_MASK: 4,
  BAD_WILDCARDS: 5,
  BAD_FIELD: 6,
  BAD_VALUE: 7,
  BAD_MASK: 8,
  BAD_PREREQ: 9,
  DUP_FIELD: 10,
  EPERM: 11,
} as const;

export const OFPFMFC = {
  UNKNOWN: 0,
  TABLE_FULL: 1,
  BAD_TABLE_ID: 2,
  OVERLAP: 3,
  EPERM: 4,
  BAD_TIMEOUT: 5,
  BAD_COMMAND: 6,
  BAD_FLAGS: 7,
} as const;

export const OFPGMFC = {
  GROUP_EXISTS: 0,
  INVALID_GROUP: 1,
  WEIGHT_UNSUPPORTED: 2,
  OUT_OF_GROUPS: 3,
  OUT_OF_BUCKETS: 4,
  CHAINING_UNSUPPORTED: 5,
  WATCH_UNSUPPORTED: 6,
  LOOP: 7,
  UNKNOWN_GROUP: 8,
  CHAINED_GROUP: 9,
  BAD_TYPE: 10,
  BAD_COMMAND: 11,
  BAD_BUCKET: 12,
  BAD_WATCH: 13,
  EPERM: 14,
} as const;

export const OFPPMFC = { BAD_PORT: 0, BAD_HW_ADDR: 1, BAD_CONFIG: 2, BAD_ADVERTISE: 3, EPERM: 4 } as const;
export const OFPTMFC = { BAD_TABLE: 0, BAD_CONFIG: 1, EPERM: 2 } as const;
export const OFPQOFC = { BAD_PORT: 0, BAD_QUEUE: 1, EPERM: 2 } as const;
export const OFPSCFC = { BAD_FLAGS: 0, BAD_LEN: 1, EPERM: 2 } as const;
export const OFPRRFC = { STALE: 0, UNSUP: 1, BAD_ROLE: 2 } as const;

export const OFPMMFC = {
  UNKNOWN: 0,
  METER_EXISTS: 1,
  INVALID_METER: 2,
  UNKNOWN_METER: 3,
  BAD_COMMAND: 4,
  BAD_FLAGS: 5,
  BAD_RATE: 6,
  BAD_BURST: 7,
  BAD_BAND: 8,
  BAD_BAND_VALUE: 9,
  OUT_OF_METERS: 10,
  OUT_OF_BANDS: 11,
} as const;

export const OFPTFFC = { BAD_TABLE: 0, BAD_METADATA: 1, BAD_TYPE: 2, BAD_LEN: 3, BAD_ARGUMENT: 4, EPERM: 5 } as const;

/** Error type -> [code-name prefix, code table]. */
const ERROR_CODE_TABLES: ReadonlyMap<number, readonly [string, Readonly<Record<string, number>>]> = new Map<
  number,
  readonly [string, Readonly<Record<string, number>>]
>([
  [OFPET.HELLO_FAILED, ['OFPHFC', OFPHFC]],
  [OFPET.BAD_REQUEST, ['OFPBRC', OFPBRC]],
  [OFPET.BAD_ACTION, ['OFPBAC', OFPBAC]],
  [OFPET.BAD_INSTRUCTION, ['OFPBIC', OFPBIC]],
  [OFPET.BAD_MATCH, ['OFPBMC', OFPBMC]],
  [OFPET.FLOW_MOD_FAILED, ['OFPFMFC', OFPFMFC]],
  [OFPET.GROUP_MOD_FAILED, ['OFPGMFC', OFPGMFC]],
  [OFPET.PORT_MOD_FAILED, ['OFPPMFC', OFPPMFC]],
  [OFPET.TABLE_MOD_FAILED, ['OFPTMFC', OFPTMFC]],
  [OFPET.QUEUE_OP_FAILED, ['OFPQOFC', OFPQOFC]],
  [OFPET.SWITCH_CONFIG_FAILED, ['OFPSCFC', OFPSCFC]],
  [OFPET.ROLE_REQUEST_FAILED, ['OFPRRFC', OFPRRFC]],
  [OFPET.METER_MOD_FAILED, ['OFPMMFC', OFPMMFC]],
  [OFPET.TABLE_FEATURES_FAILED, ['OFPTFFC', OFPTFFC]],
]);

function invert(prefix: string, table: Readonly<Record<string, number>>): Map<number, string> {
  const m = new Map<number, string>();
  for (const [name, value] of Object.entries(table)) m.set(value, `${prefix}_${name}`);
  return m;
}

const ERROR_TYPE_NAMES = invert('OFPET', OFPET);
const ERROR_CODE_NAMES = new Map<number, Map<number, string>>(
  [...ERROR_CODE_TABLES].map(([type, [prefix, table]]) => [type, invert(prefix, table)]),
);

/** 'OFPET_BAD_ACTION' for 2; 'OFPET_UNKNOWN_<n>' for numbers outside the spec. */
export function errorTypeName(type: number): string {
  return ERROR_TYPE_NAMES.get(type) ?? `OFPET_UNKNOWN_${type}`;
}

/** 'OFPBAC_BAD_EXPERIMENTER' for (2, 2); '<prefix>_UNKNOWN_<n>' when the code is not in the spec. */
export function errorCodeName(type: number, code: number): string {
  const named = ERROR_CODE_NAMES.get(type)?.get(code);
  if (named) return named;
  const prefix = ERROR_CODE_TABLES.get(type)?.[0];
  return prefix ? `${prefix}_UNKNOWN_${code}` : `CODE_${code}`;
}

/** Reverse map for message type numbers ('FEATURES_REPLY' for 6). */
const MSG_TYPE_NAMES = new Map<number, string>(Object.entries(OFPT).map(([k, v]) => [v, k]));
export function msgTypeName(type: number): string {
  return MSG_TYPE_NAMES.get(type) ?? `UNKNOWN_${type}`;
}
