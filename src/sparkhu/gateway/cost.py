"""What a GraphQL request may cost: an estimate over the whole document, checked before resolving.

Depth alone does not bound a request: one document may alias the same field a hundred times,
each asking for ``max_points`` points. :class:`QueryCost` walks the operation that is about to
run — every field, every alias, fragments expanded — and refuses it, before any resolver runs,
when its estimated cost exceeds the gateway's budget per request (``gateway.max_query_cost``).

The estimate knows no field by name, so fields other modules merge into the schema are costed
the same way:

* a field with a limiting argument (:data:`LIMIT_ARGUMENTS`: ``limit``, ``first``, ``last``,
  ``reqNum``; directly or as a field of an input-object argument) asks for that many rows; when
  the argument is absent or null, its default in the schema, else ``max_points``;
* any other field counts 1;
* every field counts once per row of the list fields around it: ``points(limit: 1000) { ts value }``
  costs 1000 + 2 × 1000, ``pointColumns(limit: 1000) { ts value }`` (one object of columns)
  1000 + 2.

A refused request answers ``extensions.code = "COST_EXCEEDED"`` with ``cost`` and ``budget``.

>>> from graphql import parse
>>> from sparkhu.gateway.schema import build_schema
>>> schema = build_schema(max_points=1000)._schema
>>> columns = parse('{ pointColumns(seriesId: "s/m/f", limit: 10) { ts value } }')
>>> document_cost(schema, columns, max_points=1000)
12
>>> document_cost(schema, parse('{ series { id } }'), max_points=1000)  # limit defaults to 100
200
>>> amplified = "{" + " ".join(f'a{i}: pointColumns(seriesId: "s/m/f") {{ ts }}' for i in range(100)) + "}"
>>> document_cost(schema, parse(amplified), max_points=1000)
100100
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension

from sparkhu.gateway.errors import CostExceeded

LIMIT_ARGUMENTS = frozenset({"limit", "first", "last", "reqNum"})
"""Argument names (and input-object field names) that bound how many rows a field returns."""

_META_FIELDS = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}

__all__ = ["LIMIT_ARGUMENTS", "CostExceeded", "QueryCost", "document_cost"]


def document_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    max_points: int,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The estimated cost of the operation of ``document`` that would run (0 if none matches).

    ``variables`` are the request's raw variable values (JSON), used for limits given as variables.
    """
    operation = _operation(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    walk = _Walk(schema, fragments, _variables(operation, variables or {}), max_points)
    return walk.selection(root, operation.selection_set, 1, frozenset())


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name is not None and op.name.value == name), None)


def _variables(operation: OperationDefinitionNode, given: Mapping[str, Any]) -> dict[str, Any]:
    """Raw variable values, with the operation's defaults for those not given."""
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in given:
            values[name] = given[name]
        elif definition.default_value is not None:
            values[name] = _literal(definition.default_value, {})
    return values


def _literal(node: Any, variables: Mapping[str, Any]) -> Any:
    """The raw value of an argument's AST: ints, null, objects and variables; Undefined otherwise."""
    if isinstance(node, VariableNode):
        return variables.get(node.name.value, Undefined)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, ObjectValueNode):
        return {field.name.value: _literal(field.value, variables) for field in node.fields}
    return Undefined


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        max_points: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_points = max_points

    def selection(
        self, parent: GraphQLNamedType, selections: SelectionSetNode, times: int, spread: frozenset[str]
    ) -> int:
        """Cost of a selection set evaluated ``times`` times on values of type ``parent``."""
        total = 0
        for field, field_parent in self._fields(parent, selections, spread):
            definition = self._definition(field_parent, field.name.value)
            if definition is None:  # validation reports unknown fields; nothing to cost here
                continue
            rows = self._rows(definition, field)
            return_type = get_nullable_type(definition.type)
            total += times * (rows if rows is not None else 1)
            if field.selection_set is not None:
                # Children run once per row of a list field; an object of columns (a non-list
                # field with a limit) holds its rows in its list leaves, counted once each.
                inner = times * (rows or 1) if isinstance(return_type, GraphQLList) else times
                total += self.selection(get_named_type(definition.type), field.selection_set, inner, spread)
        return total

    def _fields(
        self, parent: GraphQLNamedType, selections: SelectionSetNode, spread: frozenset[str]
    ) -> Iterator[tuple[FieldNode, GraphQLNamedType]]:
        for node in selections.selections:
            if isinstance(node, FieldNode):
                yield node, parent
            elif isinstance(node, InlineFragmentNode):
                inner = parent
                if node.type_condition is not None:
                    inner = self.schema.get_type(node.type_condition.name.value) or parent
                yield from self._fields(inner, node.selection_set, spread)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spread:  # unknown or cyclic: validation's to report
                    continue
                inner = self.schema.get_type(fragment.type_condition.name.value) or parent
                yield from self._fields(inner, fragment.selection_set, spread | {name})

    @staticmethod
    def _definition(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if name in _META_FIELDS:
            return _META_FIELDS[name]
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return parent.fields.get(name)
        return None

    def _rows(self, definition: GraphQLField, node: FieldNode) -> int | None:
        """Rows a field asks for through its limiting argument; None if it has none."""
        given = {arg.name.value: arg.value for arg in node.arguments or ()}
        rows: int | None = None
        for name, argument in definition.args.items():
            value = _literal(given[name], self.variables) if name in given else Undefined
            if name in LIMIT_ARGUMENTS:
                rows = self._limit(value, argument.default_value)
                continue
            input_type = get_named_type(argument.type)
            if not isinstance(input_type, GraphQLInputObjectType):
                continue
            for field_name, input_field in input_type.fields.items():
                if field_name in LIMIT_ARGUMENTS:
                    inner = value.get(field_name, Undefined) if isinstance(value, dict) else Undefined
                    rows = self._limit(inner, input_field.default_value)
        return rows

    def _limit(self, value: Any, default: Any) -> int:
        if value is Undefined:
            value = default
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 1)
        return self.max_points  # absent, null or malformed (execution rejects the last): the most


class QueryCost(SchemaExtension):
    """Schema extension: refuse an operation whose :func:`document_cost` exceeds ``budget``.

    Runs after validation and before any resolver, for queries, mutations and subscriptions.
    """

    def __init__(self, *, budget: int, max_points: int) -> None:
        self.budget = budget
        self.max_points = max_points

    def on_execute(self) -> Iterator[None]:
        """Estimate, and raise a coded GraphQL error instead of executing when over budget."""
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            cost = document_cost(
                context.schema._schema,
                document,
                max_points=self.max_points,
                variables=context.variables if isinstance(context.variables, dict) else None,
                operation_name=context.operation_name,
            )
            if cost > self.budget:
                error = CostExceeded(cost, self.budget)
                raise GraphQLError(
                    str(error),
                    original_error=error,
                    extensions={"code": "COST_EXCEEDED", "cost": cost, "budget": self.budget},
                )
        yield
