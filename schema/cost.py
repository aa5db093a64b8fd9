"""What a parsed document would cost to validate and execute, measured before either runs.

graphql-core's validation visits every selection and every value written in an argument,
compares every pair of fields that share a response name and every pair of fragments
spread into one selection set; a fragment spread inside fragments multiplies the work of
validation and execution alike; a list field multiplies the work of everything selected
below it. This walk measures all of it for a cost linear in the document's text: each
fragment is measured once and its figures reused (multiplied) wherever it is spread, a
fragment that spreads itself is refused on sight, and fields are merged by name only once
the expanded size is known to be small.

It decides nothing: `schema/documents.py` holds the limits and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_input_object_type,
    is_interface_type,
    is_list_type,
    is_object_type,
)


@dataclass(frozen=True, slots=True)
class Budget:
    """The most a document may use; exceeding any one refuses it."""

    depth: int
    selections: int
    aliases: int
    pairs: int
    fragment_pairs: int
    cost: int
    credentials: int
    credential_fields: frozenset[str]
    integer_digits: int


@dataclass(frozen=True, slots=True)
class ArgumentBound:
    """A list as long as an integer argument of its field asks (`default` without one).

    A literal counts as written (capped at `maximum`, where the resolver refuses more); a
    variable as `maximum`, since the prepared document is shared by every request.
    """

    argument: str
    default: int
    maximum: int

    def length(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value == self.argument:
                value = argument.value
                if isinstance(value, IntValueNode) and len(value.value) <= len(str(self.maximum)):
                    return max(0, min(int(value.value), self.maximum))
                return self.maximum
        return self.default


# How long a list field's answer can be: a number, or what one of its arguments says.
Bound = int | ArgumentBound


@dataclass(slots=True)
class Figures:
    """A selection set's figures, with every fragment spread in it expanded.

    `selections` counts fields, fragment spreads, inline fragments and the values written
    in their arguments and directives; `cost` is the number of values the answer could
    hold, each list as long as its bound (`list_lengths`).
    """

    selections: int = 0
    aliases: int = 0
    height: int = 0
    cost: int = 0

    def add(self, other: Figures) -> None:
        self.selections += other.selections
        self.aliases += other.aliases
        self.height = max(self.height, other.height)
        self.cost += other.cost


class Exceeded(Exception):
    """A limit of the budget is exceeded; the message says which, for the client."""


def list_lengths(
    schema: GraphQLSchema, bounds: Mapping[tuple[str, str], Bound]
) -> dict[tuple[str, str], Bound]:
    """How long each list field of this schema can be: introspection's from the schema
    itself, the service's own from `bounds`, which must name every one of them."""
    types = list(schema.type_map.values())
    composite = [t for t in types if is_object_type(t) or is_interface_type(t)]
    fields = [f for t in composite for f in t.fields.values()]
    unbounded = sorted(
        f"{t.name}.{name}"
        for t in composite
        if not t.name.startswith("__")
        for name, definition in t.fields.items()
        if _is_list(definition.type) and (t.name, name) not in bounds
    )
    if unbounded:
        raise ValueError(
            f"List fields without a length bound: {', '.join(unbounded)}; "
            "add each to the list bounds in schema/documents.py"
        )

    def longest(sizes: Iterable[int]) -> int:
        return max([1, *sizes])

    return {
        ("__Schema", "types"): longest([len(types)]),
        ("__Schema", "directives"): longest([len(schema.directives)]),
        ("__Type", "fields"): longest(len(t.fields) for t in composite),
        ("__Type", "interfaces"): longest(len(t.interfaces) for t in composite),
        ("__Type", "possibleTypes"): longest(
            len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)
        ),
        ("__Type", "enumValues"): longest(len(t.values) for t in types if is_enum_type(t)),
        ("__Type", "inputFields"): longest(len(t.fields) for t in types if is_input_object_type(t)),
        ("__Field", "args"): longest(len(f.args) for f in fields),
        ("__Directive", "args"): longest(len(d.args) for d in schema.directives),
        ("__Directive", "locations"): longest(len(d.locations) for d in schema.directives),
        **bounds,
    }


def _is_list(output: GraphQLOutputType) -> bool:
    while isinstance(output, GraphQLNonNull):
        output = output.of_type
    return is_list_type(output)


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    budget: Budget
    lengths: Mapping[tuple[str, str], Bound]
    memo: dict[str, Figures] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)

    def too_deep(self) -> Exceeded:
        return Exceeded(f"The document nests deeper than {self.budget.depth} levels")

    def selection_set(
        self, node: SelectionSetNode | None, parent: GraphQLNamedType | None, depth: int
    ) -> Figures:
        total = Figures()
        if node is None:
            return total
        if depth > self.budget.depth:
            raise self.too_deep()
        for selection in node.selections:
            total.add(self.selection(selection, parent, depth))
            self.check(total)
        return total

    def selection(
        self, node: SelectionNode, parent: GraphQLNamedType | None, depth: int
    ) -> Figures:
        written = self.values(_argument_values(node))
        if isinstance(node, FieldNode):
            output = self.output_type(parent, node.name.value)
            named = get_named_type(output) if output is not None else None
            inner = self.selection_set(node.selection_set, named, depth + 1)
            factor = self.factor(parent, node, output)
            return Figures(
                selections=1 + written + inner.selections,
                aliases=inner.aliases + (node.alias is not None),
                height=1 + inner.height,
                cost=factor * max(1, inner.cost),
            )
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            typed = self.schema.get_type(condition.name.value) if condition else parent
            inner = self.selection_set(node.selection_set, typed, depth + 1)
            return Figures(
                1 + written + inner.selections, inner.aliases, 1 + inner.height, inner.cost
            )
        assert isinstance(node, FragmentSpreadNode)
        known = self.spread(node.name.value, depth)
        return Figures(1 + written + known.selections, known.aliases, 1 + known.height, known.cost)

    def spread(self, name: str, depth: int) -> Figures:
        """A fragment's figures, measured at its first spread and reused at every other."""
        if name in self.active:
            # Validation refuses it too, but only after following the cycle everywhere.
            raise Exceeded(f"The fragment {name} spreads itself")
        known = self.memo.get(name)
        if known is None:
            definition = self.fragments.get(name)
            if definition is None:
                # An unknown fragment is a validation error; its spread alone counts.
                return Figures()
            self.active.add(name)
            try:
                typed = self.schema.get_type(definition.type_condition.name.value)
                known = self.selection_set(definition.selection_set, typed, depth + 1)
                known.selections += self.values(_directive_values(definition.directives))
            finally:
                self.active.discard(name)
            self.memo[name] = known
        if depth + 1 + known.height > self.budget.depth + 1:
            raise self.too_deep()
        return known

    def values(self, values: Iterable[ValueNode]) -> int:
        """How many values are written here, lists and objects opened; refuses an integer
        too long to read."""
        count = 0
        pending = list(values)
        while pending:
            value = pending.pop()
            count += 1
            if isinstance(value, ListValueNode):
                pending.extend(value.values)
            elif isinstance(value, ObjectValueNode):
                pending.extend(item.value for item in value.fields)
            elif (
                isinstance(value, IntValueNode)
                and len(value.value.lstrip("-")) > self.budget.integer_digits
            ):
                raise Exceeded(
                    f"The document holds an integer of more than "
                    f"{self.budget.integer_digits} digits"
                )
        return count

    def output_type(self, parent: GraphQLNamedType | None, name: str) -> GraphQLOutputType | None:
        if name == "__schema":
            return self.schema.get_type("__Schema")  # type: ignore[return-value]
        if name == "__type":
            return self.schema.get_type("__Type")  # type: ignore[return-value]
        fields = (
            getattr(parent, "fields", None)
            if is_object_type(parent) or is_interface_type(parent)
            else None
        )
        definition = fields.get(name) if fields else None
        return definition.type if definition is not None else None

    def factor(
        self, parent: GraphQLNamedType | None, node: FieldNode, output: GraphQLOutputType | None
    ) -> int:
        factor = 1
        bound = self.lengths.get((parent.name if parent else "", node.name.value), 1)
        length = bound.length(node) if isinstance(bound, ArgumentBound) else bound
        while isinstance(output, GraphQLNonNull | GraphQLList):
            if isinstance(output, GraphQLList):
                factor *= length
            output = output.of_type
        return factor

    def check(self, figures: Figures) -> None:
        if figures.selections > self.budget.selections:
            raise Exceeded(
                f"The document is too large: more than {self.budget.selections} fields, "
                "fragment spreads and argument values (counting every fragment where it "
                "is spread)"
            )
        if figures.cost > self.budget.cost:
            raise Exceeded(
                f"The answer to this document could hold more than {self.budget.cost} values"
            )


def _directive_values(directives: Iterable[DirectiveNode] | None) -> Iterator[ValueNode]:
    for directive in directives or ():
        yield from _values_of(directive.arguments)


def _values_of(arguments: Iterable[ArgumentNode] | None) -> Iterator[ValueNode]:
    for argument in arguments or ():
        yield argument.value


def _argument_values(node: SelectionNode) -> Iterator[ValueNode]:
    if isinstance(node, FieldNode):
        yield from _values_of(node.arguments)
    yield from _directive_values(node.directives)


def measure(
    document: DocumentNode,
    schema: GraphQLSchema,
    budget: Budget,
    lengths: Mapping[tuple[str, str], Bound],
) -> Figures:
    """The document's figures; raises `Exceeded` as soon as one passes the budget."""
    fragments: dict[str, FragmentDefinitionNode] = {}
    operations: list[OperationDefinitionNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments.setdefault(definition.name.value, definition)
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
    _check_credentials(operations, fragments, schema, budget)
    walk = _Walk(schema, fragments, budget, lengths)
    total = Figures()
    for operation in operations:
        root = schema.get_root_type(operation.operation)
        total.add(walk.selection_set(operation.selection_set, root, 1))
        total.selections += walk.values(_operation_values(operation))
        walk.check(total)
    # Fragments that no operation spreads are measured too: validation reads them all.
    unreached = [name for name in fragments if name not in walk.memo]
    for name in unreached:
        total.add(walk.spread(name, 0))
        walk.check(total)
    if total.aliases > budget.aliases:
        raise Exceeded(f"{total.aliases} aliases found. Allowed: {budget.aliases}")
    # Only now, with the expanded size known to be small, are fields merged by name.
    roots = [operation.selection_set for operation in operations]
    roots += [fragments[name].selection_set for name in unreached]
    pairs = Pairs()
    for selection_set in roots:
        pairs.count([selection_set], fragments)
    if pairs.fields > budget.pairs:
        raise Exceeded(
            "The document repeats the same fields too often "
            f"({pairs.fields} pairs of them to compare; at most {budget.pairs})"
        )
    if pairs.fragments > budget.fragment_pairs:
        raise Exceeded(
            "The document spreads too many distinct fragments into one selection "
            f"({pairs.fragments} pairs of them to compare; at most {budget.fragment_pairs})"
        )
    return total


def _operation_values(operation: OperationDefinitionNode) -> Iterator[ValueNode]:
    yield from _directive_values(operation.directives)
    for variable in operation.variable_definitions or ():
        if variable.default_value is not None:
            yield variable.default_value
        yield from _directive_values(variable.directives)


@dataclass(slots=True)
class Pairs:
    """The pairs validation compares: of same-named fields (each comparison recursing into
    their selections), and of the distinct fragments spread into one selection set."""

    fields: int = 0
    fragments: int = 0

    def count(
        self, sets: list[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode]
    ) -> None:
        """Adds the pairs of these merged sets, and of the sets merged below them."""
        by_name: dict[str, list[FieldNode]] = {}
        spread: set[str] = set()
        for node in _fields(sets, fragments, spread):
            by_name.setdefault((node.alias or node.name).value, []).append(node)
        self.fragments += len(spread) * (len(spread) - 1) // 2
        for nodes in by_name.values():
            self.fields += len(nodes) * (len(nodes) - 1) // 2
            inner = [node.selection_set for node in nodes if node.selection_set is not None]
            if inner:
                self.count(inner, fragments)


def _fields(
    sets: Iterable[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
    spread: set[str],
) -> Iterator[FieldNode]:
    """The fields of these selection sets, through fragments, as execution collects them;
    adds the name of every (known) fragment spread into them to `spread`."""
    stack = list(sets)
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in spread and name in fragments:
                    spread.add(name)
                    stack.append(fragments[name].selection_set)


def _check_credentials(
    operations: list[OperationDefinitionNode],
    fragments: dict[str, FragmentDefinitionNode],
    schema: GraphQLSchema,
    budget: Budget,
) -> None:
    """Count the credential mutations written anywhere in the document, each once."""
    mutation = schema.mutation_type
    if mutation is None:
        return
    stack = [op.selection_set for op in operations if op.operation == OperationType.MUTATION]
    stack += [
        fragment.selection_set
        for fragment in fragments.values()
        if fragment.type_condition.name.value == mutation.name
    ]
    found = 0
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                found += selection.name.value in budget.credential_fields
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or condition.name.value == mutation.name:
                    stack.append(selection.selection_set)
    if found > budget.credentials:
        names = ", ".join(sorted(budget.credential_fields))
        raise Exceeded(
            f"A document may contain at most {budget.credentials} of {names} "
            f"(aliases included); this one has {found}"
        )
