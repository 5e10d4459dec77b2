import protobuf from 'protobufjs';
import {jsonName} from '../codec/json-names.js';
import {didYouMean} from '../util/suggest.js';

/**
 * `grpc-batch describe` in the manner of grpcurl's: a service, a method, a message or an enum
 * written back as proto source, types fully-qualified, each field's JSON name shown where it is
 * not the field's own name (it is the name the input and the results use).
 */

/** The symbol as written, `pkg.Svc/Method` accepted for `pkg.Svc.Method`. */
export function normaliseSymbol(symbol: string): string {
  return symbol.replace(/^\./, '').replace('/', '.');
}

/** `pkg.Svc is a service:` and its definition; throws `Error` naming close symbols when unknown. */
export function describeSymbol(root: protobuf.Root, symbol: string): string {
  const name = normaliseSymbol(symbol);
  let found: protobuf.ReflectionObject | null = null;
  try {
    found = root.lookup(`.${name}`);
  } catch {
    found = null;
  }
  if (found instanceof protobuf.Service) return `${name} is a service:\n${serviceText(found, '')}`;
  if (found instanceof protobuf.Method) return `${name} is a method:\n${methodText(found)}`;
  if (found instanceof protobuf.Type) return `${name} is a message:\n${messageText(found, '')}`;
  if (found instanceof protobuf.Enum) return `${name} is an enum:\n${enumText(found, '')}`;
  const symbols = allSymbols(root);
  throw new Error(`unknown symbol "${symbol}"${didYouMean(name, symbols)}; grpc-batch describe without a symbol lists the services`);
}

function allSymbols(ns: protobuf.NamespaceBase): string[] {
  const out: string[] = [];
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Service) {
      out.push(nested.fullName.slice(1));
      for (const method of nested.methodsArray) out.push(method.fullName.slice(1));
    } else if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) out.push(nested.fullName.slice(1));
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) out.push(...allSymbols(nested));
  }
  return out;
}

function typeRef(_field: protobuf.Field | protobuf.Method, name: string, resolved: protobuf.ReflectionObject | null | undefined): string {
  return resolved ? resolved.fullName : name;
}

function serviceText(service: protobuf.Service, indent: string): string {
  const lines = service.methodsArray.map((method) => `${indent}  ${methodText(method)}`);
  return `${indent}service ${service.name} {\n${lines.join('\n')}${lines.length ? '\n' : ''}${indent}}`;
}

function methodText(method: protobuf.Method): string {
  method.resolve();
  const request = typeRef(method, method.requestType, method.resolvedRequestType);
  const response = typeRef(method, method.responseType, method.resolvedResponseType);
  return `rpc ${method.name} ( ${method.requestStream ? 'stream ' : ''}${request} ) returns ( ${method.responseStream ? 'stream ' : ''}${response} );`;
}

function fieldText(field: protobuf.Field): string {
  field.resolve();
  const type = typeRef(field, field.type, field.resolvedType);
  const map = field as unknown as protobuf.MapField;
  const label = field.map
    ? `map<${map.keyType}, ${type}>`
    : `${field.repeated ? 'repeated ' : field.required ? 'required ' : field.options?.['proto3_optional'] ? 'optional ' : ''}${type}`;
  const options: string[] = [];
  const json = jsonName(field);
  if (json !== field.name) options.push(`json_name = "${json}"`);
  if (field.options?.['default'] !== undefined) options.push(`default = ${JSON.stringify(field.options['default'])}`);
  if (field.options?.['deprecated']) options.push('deprecated = true');
  return `${label} ${field.name} = ${field.id}${options.length ? ` [${options.join(', ')}]` : ''};`;
}

function messageText(type: protobuf.Type, indent: string): string {
  const inner = `${indent}  `;
  const lines: string[] = [];
  const inOneof = new Set<protobuf.Field>();
  for (const oneof of type.oneofsArray) {
    // A proto3 `optional` field is a oneof of one, named _field: written as `optional`.
    if (oneof.fieldsArray.length === 1 && oneof.fieldsArray[0]!.options?.['proto3_optional']) continue;
    for (const field of oneof.fieldsArray) inOneof.add(field);
  }
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    if (inOneof.has(field)) continue;
    lines.push(`${inner}${fieldText(field)}`);
  }
  for (const oneof of type.oneofsArray) {
    if (!oneof.fieldsArray.some((f) => inOneof.has(f))) continue;
    lines.push(`${inner}oneof ${oneof.name} {`, ...oneof.fieldsArray.map((f) => `${inner}  ${fieldText(f)}`), `${inner}}`);
  }
  for (const nested of type.nestedArray) {
    if (nested instanceof protobuf.Type) lines.push(messageText(nested, inner));
    else if (nested instanceof protobuf.Enum) lines.push(enumText(nested, inner));
  }
  return `${indent}message ${type.name} {\n${lines.join('\n')}${lines.length ? '\n' : ''}${indent}}`;
}

function enumText(type: protobuf.Enum, indent: string): string {
  const lines = Object.entries(type.values).map(([name, value]) => `${indent}  ${name} = ${value};`);
  return `${indent}enum ${type.name} {\n${lines.join('\n')}\n${indent}}`;
}
